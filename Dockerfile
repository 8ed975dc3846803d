# syntax=docker/dockerfile:1.7
#
# The suite's image: one program, `exitosx-cron`, whose first argument is the job
# (INTERFACES.md); each CronJob of the chart only changes `args`.
#   docker build -t exitosx-cron .
#   docker run --rm --read-only --tmpfs /tmp exitosx-cron detect-inactivity --dry-run
#
# test/k8s/image.test.ts reads this file and runs its COPY and RUN steps outside
# Docker, so keep each step a plain command run in WORKDIR. CI also builds it with
# podman and runs it as a pod would (test/k8s/container.test.ts, .ci/run).
#
# For a production build, pin the base by digest (README, "The image"):
#   docker build --build-arg NODE_IMAGE=node:24-slim@sha256:<digest> .

ARG NODE_IMAGE=node:24-slim

# ---- build: all dependencies, TypeScript compiled to dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# .npmrc: engine-strict, so an install on a Node older than package.json's engines stops.
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY jobs ./jobs
COPY lib ./lib
# No source maps in the image: nothing there reads them (no --enable-source-maps).
RUN npm run build -- --sourceMap false

# ---- deps: the production tree from the lock file, its SBOM, without what Node never loads ----
FROM ${NODE_IMAGE} AS deps
# The folder's name is the SBOM's component name (npm sbom takes it from there).
WORKDIR /exitosx-cron
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# The CycloneDX SBOM of this tree, shipped as /app/sbom.cdx.json. Made here, in a tree
# without dev dependencies, and with them struck from this stage's package.json: on a
# full tree, `npm sbom --omit dev` also drops production packages that a dev tool
# uses too (pg-types, pg-protocol, debug, yaml… 17 of 255: npm/cli#7909), and on this
# tree it refuses the devDependencies it cannot find (ESBOMPROBLEMS).
RUN npm pkg delete devDependencies \
  && npm sbom --omit dev --sbom-format cyclonedx > sbom.cdx.json
COPY scripts/prune-node-modules.sh ./
RUN sh prune-node-modules.sh node_modules

# ---- runtime: production dependencies and the compiled JavaScript only ----
FROM ${NODE_IMAGE} AS runtime
# PID 1 is tini, not node. The suite handles SIGTERM/SIGINT itself while a job runs
# (lib/runtime/shutdown.ts: finish the item in hand, flush telemetry, exit 143), and
# tini forwards those signals to it unchanged. But a process that is PID 1 gets no
# default signal actions from the kernel: `migrate` (the Helm hook), `trigger` and the
# moments before a job installs its handlers would ignore SIGTERM and wait for the
# SIGKILL at the end of the grace period. Under tini node is an ordinary process, so
# those exit at once on SIGTERM, and any stray child is reaped.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The root filesystem is read-only in the cluster: everything written goes to /tmp
# (an emptyDir in the chart). The embedded database and the email outbox are only
# used when DATABASE_URL / SENDGRID_API_KEY are not set.
# NODE_OPTIONS: a young generation of 16 MB semi-spaces. The jobs allocate fast
# and keep little. V8's default for a large host put the drift job at ~430 MB
# (bench/FINDINGS.md); 8 MB was the setting until the sync's report calls stopped
# keeping promises and listeners alive while in flight (round four): with fewer
# survivors per young collection, 16 MB halves their number, sync-quickbooks
# CPU -25% at 1M users, the other jobs the same within noise, peak RSS 180-220 MB.
# The old generation's growth is set by the CLI itself (bin/exitosx-cron.ts:
# NODE_OPTIONS refuses that flag). A --max-old-space-size cost 25-40% more CPU.
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-semi-space-size=16 \
    HOME=/tmp \
    EMBEDDED_DB_DIR=/tmp/exitosx/db \
    EMAIL_OUTBOX_DIR=/tmp/exitosx/outbox
# The production tree, installed and pruned in the deps stage (one layer, nothing
# deleted on top of it), the compiled JavaScript and the SBOM.
COPY package.json package-lock.json ./
COPY --from=deps /exitosx-cron/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=deps /exitosx-cron/sbom.cdx.json ./
RUN chmod 0755 dist/bin/exitosx-cron.js \
  && ln -s /app/dist/bin/exitosx-cron.js /usr/local/bin/exitosx-cron
# A numeric user (Kubernetes can check runAsNonRoot against it); the chart runs as the same.
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "exitosx-cron"]
CMD ["--help"]
