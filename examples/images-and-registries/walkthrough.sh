#!/usr/bin/env bash
# An image taken apart by hand: minict save, then index.json -> manifest ->
# config -> layers, every digest recomputed with sha256sum; a whiteout; the
# registry API with curl (/v2/, a token, blobs and a manifest pushed and read
# back); then minict push and pull doing the same; and why two images share
# a layer, in the store and in the registry. Each step checks what it shows
# ("check: ..."). Read README.md alongside. Run as root: sudo ./walkthrough.sh
# The registry is a real one (Debian's docker-registry) on 127.0.0.1, with a
# token server beside it, both the walk-through's own and stopped at its end;
# its login goes to a credentials file in its temp dir, not yours.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lesson.sh"
require_root
for tool in docker-registry curl sha256sum gzip; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
ROOT=${MINICT_ROOT:-/var/lib/minict}
PY=$repo/.venv/bin/python
USER_PASS=student:secret
REPO=lesson/busybox

work=$(mktemp -d)
registry_pid=
host=
tidy() {
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null; wait "$registry_pid"; fi
    "$MINICT" rmi lesson-slim:1 >/dev/null 2>&1
    [ -n "$host" ] && "$MINICT" rmi "$host/$REPO:slim" >/dev/null 2>&1
    rm -rf "$work"
}
trap tidy EXIT
# minict login writes here, not to ~/.config/minict or ~/.docker
export MINICT_AUTH_FILE=$work/auth.json DOCKER_CONFIG=$work/docker
ensure_busybox_image

jget() {  # jget FILE a.b.0.c: one value of a JSON file (FILE - : standard input)
    "$PY" -c 'import json, sys
value = json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1]))
for key in sys.argv[2].split("."):
    value = value[int(key)] if key.isdigit() else value[key]
print(value)' "$1" "$2"
}
sum_of() {  # the sha256 of a file, as a digest
    echo "sha256:$(sha256sum < "$1" | cut -d' ' -f1)"
}
blob() {  # blob DIR DIGEST: where an unpacked archive keeps it
    echo "$1/blobs/sha256/${2#sha256:}"
}

step "1. minict save, unpacked: index.json -> manifest -> config -> layer, each named by its sha256"
"$MINICT" save -o "$work/busybox.tar" busybox
mkdir "$work/busybox"
tar -xf "$work/busybox.tar" -C "$work/busybox"
(cd "$work/busybox" && ls -l index.json oci-layout manifest.json blobs/sha256)
cat "$work/busybox/index.json"; echo
manifest=$(jget "$work/busybox/index.json" manifests.0.digest)
echo "the manifest ($manifest):"
cat "$(blob "$work/busybox" "$manifest")"; echo
check "the manifest's file hashes to its name" "$manifest" "$(sum_of "$(blob "$work/busybox" "$manifest")")"
check "and its size is the one index.json gives" "$(jget "$work/busybox/index.json" manifests.0.size)" \
      "$(stat -c %s "$(blob "$work/busybox" "$manifest")")"
config=$(jget "$(blob "$work/busybox" "$manifest")" config.digest)
layer=$(jget "$(blob "$work/busybox" "$manifest")" layers.0.digest)
echo "the config ($config):"
cat "$(blob "$work/busybox" "$config")"; echo
check "the config's file hashes to its name" "$config" "$(sum_of "$(blob "$work/busybox" "$config")")"
check "the layer's file hashes to its name" "$layer" "$(sum_of "$(blob "$work/busybox" "$layer")")"
check "the image id is the config's digest" "$config" "$(jget <("$MINICT" image inspect busybox) 0.Id)"
base_diff=$(jget "$(blob "$work/busybox" "$config")" rootfs.diff_ids.0)
if [ "$(jget "$(blob "$work/busybox" "$manifest")" layers.0.mediaType)" = application/vnd.oci.image.layer.v1.tar ]; then
    check "an uncompressed layer: its diff_id (config) is its digest (manifest)" "$layer" "$base_diff"
else    # a busybox pulled from a registry, not the lesson's import: a gzipped layer
    check "the tar inside the layer hashes to its diff_id (config)" "$base_diff" \
          "sha256:$(gzip -dc < "$(blob "$work/busybox" "$layer")" | sha256sum | cut -d' ' -f1)"
fi
echo "the layer is a tar of the files (tar -tvf, first lines):"
tar -tvf "$(blob "$work/busybox" "$layer")" | head -5
check "it holds bin/sh" "bin/sh" "$(tar -tf "$(blob "$work/busybox" "$layer")" | grep -x 'bin/sh')"

step "2. A second image, FROM busybox: one new layer, gzipped, with a whiteout"
cat "$here/slim/Dockerfile"
"$MINICT" build -t lesson-slim:1 "$here/slim"
"$MINICT" save -o "$work/slim.tar" lesson-slim:1
mkdir "$work/slim"
tar -xf "$work/slim.tar" -C "$work/slim"
slim_manifest=$(blob "$work/slim" "$(jget "$work/slim/index.json" manifests.0.digest)")
slim_config=$(blob "$work/slim" "$(jget "$slim_manifest" config.digest)")
top=$(jget "$slim_manifest" layers.1.digest)
top_diff=$(jget "$slim_config" rootfs.diff_ids.1)
echo "its layers: $(jget "$slim_manifest" layers.0.digest) (busybox's) and $top"
check "its first layer is busybox's, byte for byte" "$layer" "$(jget "$slim_manifest" layers.0.digest)"
check "the top layer is gzip (its media type)" "application/vnd.oci.image.layer.v1.tar+gzip" \
      "$(jget "$slim_manifest" layers.1.mediaType)"
check "the gzip file hashes to the manifest's digest" "$top" "$(sum_of "$(blob "$work/slim" "$top")")"
check "the tar inside hashes to the config's diff_id" "$top_diff" \
      "sha256:$(gzip -dc < "$(blob "$work/slim" "$top")" | sha256sum | cut -d' ' -f1)"
echo "the top layer:"
tar -tzvf "$(blob "$work/slim" "$top")"
check "rm /bin/vi left a whiteout, bin/.wh.vi" "bin/.wh.vi" \
      "$(tar -tzf "$(blob "$work/slim" "$top")" | grep '\.wh\.')"
check "so in a container vi is gone, and the new file is there" "gone hello" \
      "$("$MINICT" run --rm --network none lesson-slim:1 sh -c 'test -e /bin/vi || echo -n "gone "; cat /etc/motd')"

step "3. The store keeps each layer once, unpacked, named by its diff_id"
echo "$ROOT/layers/:"
ls "$ROOT/layers"
check "busybox's layer is unpacked once, for both images" "1" \
      "$(ls "$ROOT/layers" | grep -c "^${base_diff#sha256:}$")"
check "the new layer has a directory of its own" "yes" \
      "$([ -d "$ROOT/layers/${top_diff#sha256:}/fs" ] && echo yes)"
check "holding the whiteout as overlayfs wants it: a 0:0 character device" "character special file 0:0" \
      "$(stat -c '%F %t:%T' "$ROOT/layers/${top_diff#sha256:}/fs/bin/vi")"
# (the narration's mount line, whole: lesson.sh's explain cuts lines short)
lower=$("$MINICT" --explain run --rm --network none lesson-slim:1 true 2>&1 >/dev/null \
        | grep -o 'lowerdir=[^,"]*')
echo "minict --explain run: mount(\"overlay\", ..., \"$lower,upperdir=...,workdir=...\")"
check "a container stacks them read-only: top layer, then busybox's" \
      "lowerdir=$ROOT/layers/${top_diff#sha256:}/fs:$ROOT/layers/${base_diff#sha256:}/fs" "$lower"

step "4. A registry by hand: /v2/, a token, blobs and a manifest with curl"
mkdir "$work/registry"
PYTHONPATH=$repo "$PY" "$here/registry.py" "$work/registry" "$USER_PASS" \
    >"$work/registry/helper.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    [ -s "$work/registry/address" ] && break
    kill -0 "$registry_pid" 2>/dev/null || break
    sleep 0.2
done
host=$(cat "$work/registry/address" 2>/dev/null)
if [ -z "$host" ]; then
    echo "the registry did not start:" >&2; cat "$work/registry/helper.log" >&2; exit 1
fi
url=http://$host
echo "a registry at $url"
curl -si "$url/v2/" | tr -d '\r' | tee "$work/v2.txt"; echo
check "/v2/ answers 401 without a token" "401" "$(head -1 "$work/v2.txt" | cut -d' ' -f2)"
challenge=$(grep -i '^www-authenticate:' "$work/v2.txt")
realm=$(echo "$challenge" | sed 's/.*realm="\([^"]*\)".*/\1/')
service=$(echo "$challenge" | sed 's/.*service="\([^"]*\)".*/\1/')
check "its challenge says: get a Bearer token from the realm" "Bearer" \
      "$(echo "$challenge" | awk '{print $2}')"
scope=repository:$REPO:pull,push
echo "GET $realm?service=$service&scope=$scope (with user and password)"
token=$(curl -s -u "$USER_PASS" "$realm?service=$service&scope=$scope" | jget - token)
echo "the token's claims (the middle of the JWT, base64url):"
claims=$(echo "$token" | cut -d. -f2 | tr '_-' '/+')
while [ $(( ${#claims} % 4 )) != 0 ]; do claims="$claims="; done
echo "$claims" | base64 -d | tee "$work/claims.json"; echo
check "it grants pull and push on $REPO" "['pull', 'push']" "$(jget "$work/claims.json" access.0.actions)"
auth="Authorization: Bearer $token"
check "with it, /v2/ answers 200" "200" "$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$url/v2/")"

push_blob() {  # push_blob FILE DIGEST: POST an upload, PUT the bytes with their digest
    local location
    location=$(curl -si -X POST -H "$auth" "$url/v2/$REPO/blobs/uploads/" | tr -d '\r' \
               | sed -n 's/^[Ll]ocation: //p')
    case "$location" in /*) location=$url$location;; esac
    curl -s -o /dev/null -w '%{http_code}' -X PUT -H "$auth" \
         -H 'Content-Type: application/octet-stream' --data-binary "@$1" "$location&digest=$2"
}
echo "push busybox's layer, then its config, then its manifest (the order docker uses):"
check "PUT the layer: 201 Created" "201" "$(push_blob "$(blob "$work/busybox" "$layer")" "$layer")"
check "PUT the config: 201 Created" "201" "$(push_blob "$(blob "$work/busybox" "$config")" "$config")"
check "PUT the manifest as :latest: 201 Created" "201" \
      "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "$auth" \
         -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
         --data-binary "@$(blob "$work/busybox" "$manifest")" "$url/v2/$REPO/manifests/latest")"
echo "read it back:"
curl -s -D "$work/headers.txt" -H "$auth" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
     -o "$work/manifest.json" "$url/v2/$REPO/manifests/latest"
tr -d '\r' < "$work/headers.txt" | grep -i -E '^(content-type|docker-content-digest):'
check "the registry names the manifest by the same digest" "$manifest" \
      "$(tr -d '\r' < "$work/headers.txt" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')"
check "and its bytes hash to it" "$manifest" "$(sum_of "$work/manifest.json")"
curl -s -L -H "$auth" -o "$work/config.json" "$url/v2/$REPO/blobs/$config"
check "GET the config blob: the same sha256" "$config" "$(sum_of "$work/config.json")"

step "5. minict push and pull: the same requests, and a shared layer crosses once"
echo "${USER_PASS#*:}" | "$MINICT" login -u "${USER_PASS%%:*}" --password-stdin "$host"
"$MINICT" tag lesson-slim:1 "$host/$REPO:slim"
lines_before=$(wc -l < "$work/registry/registry/registry.log")
"$MINICT" push "$host/$REPO:slim"
pushed=$(tail -n +"$((lines_before + 1))" "$work/registry/registry/registry.log" | grep -o '"[A-Z]* /v2/[^"]*" [0-9]*')
echo "what minict push asked the registry (access log):"
echo "$pushed" | sed 's/?.*HTTP/ HTTP/'
check "busybox's layer was already there: HEAD said 200, and it was not sent again" \
      "\"HEAD /v2/$REPO/blobs/$layer HTTP/1.1\" 200" "$(echo "$pushed" | grep "HEAD /v2/$REPO/blobs/$layer ")"
check "two uploads: the new layer and the config" "2" "$(echo "$pushed" | grep -c '"POST ')"
other=$work/other-store
mkdir "$other"
"$MINICT" --root "$other" pull "$host/$REPO:latest"
"$MINICT" --root "$other" pull "$host/$REPO:slim"
check "pulled into an empty store: busybox, the same image id" "$config" \
      "$(jget <("$MINICT" --root "$other" image inspect "$host/$REPO:latest") 0.Id)"
check "and the slim one" "$(jget "$slim_manifest" config.digest)" \
      "$(jget <("$MINICT" --root "$other" image inspect "$host/$REPO:slim") 0.Id)"
check "the base layer was fetched once, for both" "1" \
      "$(grep -c "\"GET /v2/$REPO/blobs/$layer " "$work/registry/registry/registry.log")"
check "and is unpacked once in the other store too" "2" "$(ls "$other/layers" | wc -l)"

all_checks_passed
