#!/usr/bin/env bash
# Vendors KaTeX's stylesheet and fonts into the book (docs/src/katex), so that the built book
# renders its math with no network. The math itself is rendered at build time by the
# mdbook-katex preprocessor, whose bundled KaTeX is 0.16.4 (the katex crate's KATEX-VERSION);
# the stylesheet must be the same version. Only the woff2 fonts are kept (every browser that
# runs the book reads them); the stylesheet's woff/ttf fallbacks are removed accordingly.
# Needs npm (the npm registry). Run from anywhere; rerun only to change the KaTeX version.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-0.16.4}"
out=docs/src/katex
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "katex@$version" >/dev/null && tar xzf "katex-$version.tgz")
rm -rf "$out"
mkdir -p "$out/fonts"
cp "$work"/package/dist/fonts/*.woff2 "$out/fonts/"
cp "$work"/package/LICENSE "$out/LICENSE"
{
  echo "/* KaTeX $version (MIT, see LICENSE), dist/katex.min.css with only the woff2 fonts: scripts/vendor_katex.sh */"
  sed -E -e 's/,url\(fonts\/[^)]*\.woff\) format\("woff"\)//g' \
         -e 's/,url\(fonts\/[^)]*\.ttf\) format\("truetype"\)//g' \
         "$work"/package/dist/katex.min.css
} > "$out/katex.min.css"
if grep -q '\.woff)\|\.ttf)' "$out/katex.min.css"; then
  echo "the stylesheet still names woff or ttf fonts" >&2
  exit 1
fi
echo "KaTeX $version in $out: $(ls "$out/fonts" | wc -l) fonts"
