{{/*
The release's object prefix: the release name (or fullnameOverride). CronJobs are
"<prefix>-<job>", the name `exitosx-cron trigger --release <prefix>` looks for.
A CronJob name may be at most 52 characters (the controller appends 11 for its Jobs).
*/}}
{{- define "exitosx-cron.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "exitosx-cron.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "exitosx-cron.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "exitosx-cron.secretName" -}}
{{- default (include "exitosx-cron.fullname" .) .Values.secret.existingSecret -}}
{{- end -}}

{{/* Labels the pods are selected by (NetworkPolicy). */}}
{{- define "exitosx-cron.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "exitosx-cron.labels" -}}
{{ include "exitosx-cron.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: exitosx
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "exitosx-cron.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The ConfigMap's data: the non-empty entries of .Values.config. */}}
{{- define "exitosx-cron.configData" -}}
{{- range $k, $v := .Values.config }}
{{- if ne (toString $v) "" }}
{{ $k }}: {{ toString $v | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The chart-made Secret's data: the non-empty entries of .Values.secret.values. */}}
{{- define "exitosx-cron.secretData" -}}
{{- range $k, $v := .Values.secret.values }}
{{- if ne (toString $v) "" }}
{{ $k }}: {{ toString $v | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod Security Standards "restricted". */}}
{{- define "exitosx-cron.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "exitosx-cron.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The pod spec shared by the CronJobs and the migration Job.
Arguments (a dict): root, component, args, job (merged job settings), configMap,
secret, kubernetesApi (whether the pod calls the Kubernetes API).
*/}}
{{- define "exitosx-cron.podSpec" -}}
{{- $root := .root -}}
{{- $job := .job -}}
restartPolicy: Never
{{- if .kubernetesApi }}
serviceAccountName: {{ include "exitosx-cron.serviceAccountName" $root }}
automountServiceAccountToken: true
{{- else }}
automountServiceAccountToken: false
{{- end }}
terminationGracePeriodSeconds: {{ $job.terminationGracePeriodSeconds }}
securityContext:
  {{- include "exitosx-cron.podSecurityContext" $root | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $job.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $job.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $job.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $job.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: exitosx-cron
    image: {{ include "exitosx-cron.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
    envFrom:
      - configMapRef:
          name: {{ .configMap }}
      - secretRef:
          name: {{ .secret }}
    env:
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: POD_NAMESPACE
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      - name: JOB_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.labels['batch.kubernetes.io/job-name']
      {{- if and $job.indexed $job.indexed.enabled }}
      - name: SHARD_COUNT
        value: {{ $job.indexed.shards | quote }}
      {{- end }}
      {{- range $k, $v := $job.env }}
      - name: {{ $k }}
        value: {{ toString $v | quote }}
      {{- end }}
    resources:
      {{- toYaml $job.resources | nindent 6 }}
    securityContext:
      {{- include "exitosx-cron.containerSecurityContext" $root | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  # The root filesystem is read-only: the embedded database and the email outbox (when
  # no DATABASE_URL / SENDGRID_API_KEY is set) and Node's temporary files live here.
  - name: tmp
    emptyDir:
      sizeLimit: 1Gi
{{- end -}}

{{/*
podFailurePolicy: exit code 2 (usage or configuration error: nothing was done, a retry
cannot help) fails the Job at once; a pod disrupted by the cluster (eviction,
preemption, node drain) is not counted against backoffLimit.
*/}}
{{- define "exitosx-cron.podFailurePolicy" -}}
rules:
  - action: FailJob
    onExitCodes:
      containerName: exitosx-cron
      operator: In
      values: [2]
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
        status: "True"
{{- end -}}
