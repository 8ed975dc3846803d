#!/bin/sh
# Deletes from a production node_modules what Node never loads when the suite runs,
# to keep the image small (the Dockerfile's `deps` stage; docs/SUPPLY-CHAIN.md):
#   - source maps (*.map): read only with --enable-source-maps, which the image does not set;
#   - type declarations and TypeScript sources (*.ts, *.mts, *.cts, *.d.ts…): Node
#     refuses to strip types under node_modules, so they are never loaded;
#   - READMEs, changelogs and other Markdown;
#   - a package's own tests, examples and CI folder, at the package's root only
#     (a `test` or `doc` folder deeper down can be code: yaml/dist/doc is).
# Licence files stay. The tree is installed first by `npm ci --omit=dev` from the lock
# file, so what remains is the same on every build. Usage: prune-node-modules.sh [DIR]
set -eu
dir=${1:-node_modules}
[ -d "$dir" ] || { echo "prune-node-modules: no folder $dir" >&2; exit 2; }
before=$(du -sk "$dir" | cut -f1)
find "$dir" -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
  -o -iname 'README' -o -iname 'README.*' -o -iname 'CHANGELOG*' -o -iname 'HISTORY.md' -o -iname 'CHANGES.md' \
  -o -name '*.md' -o -name '*.markdown' \) -delete
# node_modules/<pkg>/<folder> or node_modules/@scope/<pkg>/<folder>, nested node_modules included.
find "$dir" -depth -type d -regextype posix-extended \
  -regex '(.*/)?node_modules/(@[^/]+/)?[^/@][^/]*/(test|tests|__tests__|example|examples|\.github)' \
  -exec rm -rf {} +
after=$(du -sk "$dir" | cut -f1)
echo "prune-node-modules: $dir $((before / 1024)) MB -> $((after / 1024)) MB"
