# Sourced by the recognize scripts here. split_drawers CHARACTER_DIR DEST LABEL copies one
# character's 20 drawings into the support and query folders the scripts label with:
# DEST/s1/LABEL (drawer 01, the one-shot support), DEST/s5/LABEL (drawers 01-05, five shots)
# and DEST/q/LABEL (drawers 06-20, the queries).
split_drawers() {
  local c=$1 dest=$2 label=$3 f dr
  mkdir -p "$dest/s1/$label" "$dest/s5/$label" "$dest/q/$label"
  for f in "$c"/*.png; do
    dr=$((10#${f: -6:2}))
    if [ "$dr" -eq 1 ]; then cp "$f" "$dest/s1/$label/"; fi
    if [ "$dr" -le 5 ]; then cp "$f" "$dest/s5/$label/"; else cp "$f" "$dest/q/$label/"; fi
  done
}
