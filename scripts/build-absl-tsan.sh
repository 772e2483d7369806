#!/usr/bin/env bash
# Builds a ThreadSanitizer-instrumented, static Abseil that is ABI-identical to
# the installed libabsl-dev (same Debian source package, same version, same
# Debian patches, so the same inline namespace, e.g. absl::debian3), and
# caches it outside the repository:
#   ${ANNEAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/anneal}/absl-tsan-<debian version>
# Why: Debian's libabsl*.so are not built with -fsanitize=thread, so TSAN
# cannot see absl::Mutex lock/unlock and reports races on everything it guards.
#
# Usage: prefix=$(scripts/build-absl-tsan.sh)
#        cmake ... -DANNEAL_SANITIZE=thread -Dabsl_DIR="$prefix/lib/cmake/absl"
# The prefix is the last (only) line on stdout; progress goes to stderr.
# Idempotent: returns at once when the prefix already holds abslConfig.cmake.
# Needs only the Debian archive (apt-get source) and apt for missing tools.
set -euo pipefail

exec 3>&1 1>&2           # stdout is for the prefix; everything else to stderr
log() { echo "build-absl-tsan: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Which Abseil: exactly the installed libabsl-dev -------------------------
status=$(dpkg-query -W -f='${Status}' libabsl-dev 2>/dev/null || true)
[[ "$status" == "install ok installed" ]] ||
  die "libabsl-dev is not installed (run scripts/install-deps.sh first)"
SRC_PKG=$(dpkg-query -W -f='${source:Package}' libabsl-dev)     # abseil
SRC_VER=$(dpkg-query -W -f='${source:Version}' libabsl-dev)     # 20220623.1-1+deb12u2
BIN_VER=$(dpkg-query -W -f='${Version}' libabsl-dev)

# Bump RECIPE whenever the flags or the local patch below change, so caches
# built by an older recipe are not reused.
RECIPE=r1
CACHE_ROOT=${ANNEAL_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/anneal}
PREFIX="$CACHE_ROOT/absl-tsan-$SRC_VER-$RECIPE"
CONFIG="$PREFIX/lib/cmake/absl/abslConfig.cmake"

if [[ -f "$CONFIG" ]]; then
  log "cached: $PREFIX"
  echo "$PREFIX" >&3
  exit 0
fi

mkdir -p "$CACHE_ROOT"
# One builder at a time per cache (parallel CI jobs on the same machine).
exec 9>"$CACHE_ROOT/absl-tsan.lock"
flock 9
if [[ -f "$CONFIG" ]]; then            # another job finished while we waited
  log "cached: $PREFIX"
  echo "$PREFIX" >&3
  exit 0
fi

start=$SECONDS
log "building TSAN Abseil $SRC_PKG $SRC_VER (libabsl-dev $BIN_VER) into $PREFIX"

# --- Tools -------------------------------------------------------------------
need=()
for p in dpkg-dev cmake ninja-build g++; do
  s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$s" == "install ok installed" ]] || need+=("$p")
done
if [[ ${#need[@]} -gt 0 ]]; then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}"
fi

# --- Private apt configuration: deb-src twins of the system's Debian entries -
WORK="$CACHE_ROOT/absl-tsan-work"
rm -rf "$WORK"
APT="$WORK/apt"
mkdir -p "$APT/sources.list.d" "$APT/lists/partial" "$APT/cache/archives/partial" \
  "$WORK/src"

# shellcheck disable=SC1091
CODENAME=$( . /etc/os-release && echo "${VERSION_CODENAME:-}" )
[[ -n "$CODENAME" ]] || die "no VERSION_CODENAME in /etc/os-release"
# Suites of the Debian archive for this release (bookworm, bookworm-updates,
# bookworm-security, ...); third-party repositories use other suite names.
SUITE_RE="^${CODENAME}(-updates|-security|-backports|-proposed-updates)?(/updates)?$"

: >"$APT/sources.list"
# One-line format (/etc/apt/sources.list, *.list): deb [opts] URI SUITE COMP...
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [[ -f "$f" ]] || continue
  awk -v re="$SUITE_RE" '
    /^[ \t]*deb[ \t]/ {
      line = $0; sub(/^[ \t]*deb/, "deb-src", line)
      tmp = line; sub(/^deb-src[ \t]+(\[[^]]*\][ \t]+)?/, "", tmp)
      split(tmp, w, /[ \t]+/)          # w[1] URI, w[2] suite
      if (w[2] ~ re) print line
    }' "$f" >>"$APT/sources.list"
done
# deb822 format (*.sources): copy stanzas with Types: deb, as Types: deb-src,
# keeping only this release's suites (and Signed-By etc. verbatim).
for f in /etc/apt/sources.list.d/*.sources; do
  [[ -f "$f" ]] || continue
  awk -v re="$SUITE_RE" '
    function flush(   i, keep, n, s, out, k) {
      if (nl == 0) return
      keep = hasdeb && enabled && suites != ""
      if (keep) {
        for (i = 1; i <= nl; i++) {
          if (tolower(L[i]) ~ /^types:/) L[i] = "Types: deb-src"
          else if (tolower(L[i]) ~ /^suites:/) L[i] = "Suites:" suites
          print L[i]
        }
        print ""
      }
      nl = 0; hasdeb = 0; enabled = 1; suites = ""
    }
    BEGIN { nl = 0; hasdeb = 0; enabled = 1; suites = "" }
    /^[ \t]*$/ { flush(); next }
    /^#/ { next }
    {
      L[++nl] = $0
      low = tolower($0)
      if (low ~ /^types:/) {
        n = split(substr($0, index($0, ":") + 1), t, /[ \t]+/)
        for (k = 1; k <= n; k++) if (t[k] == "deb") hasdeb = 1
      } else if (low ~ /^enabled:/) {
        if (low ~ /no/) enabled = 0
      } else if (low ~ /^suites:/) {
        n = split(substr($0, index($0, ":") + 1), t, /[ \t]+/)
        for (k = 1; k <= n; k++) if (t[k] ~ re) suites = suites " " t[k]
      }
    }
    END { flush() }' "$f" >>"$APT/sources.list.d/debian.sources"
done
if ! grep -qs . "$APT/sources.list" "$APT/sources.list.d/debian.sources"; then
  die "no Debian archive ($CODENAME) entry found in /etc/apt/sources.list{,.d/}"
fi
log "deb-src entries derived from the system apt sources:"
cat "$APT/sources.list" "$APT/sources.list.d/debian.sources" 2>/dev/null |
  grep -E '^(deb-src|URIs|Suites)' | sed 's/^/  /' >&2 || true

APT_OPTS=(-o "Dir::Etc::SourceList=$APT/sources.list"
          -o "Dir::Etc::SourceParts=$APT/sources.list.d"
          -o "Dir::State::Lists=$APT/lists"
          -o "Dir::Cache=$APT/cache"
          -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
          -o "APT::Get::List-Cleanup=0")
# As root apt downloads as _apt, which cannot write under /root; the fallback
# is the same unsandboxed download, minus the notice.
[[ $(id -u) -ne 0 ]] || APT_OPTS+=(-o "APT::Sandbox::User=root")

log "apt-get update (private source index)"
apt-get "${APT_OPTS[@]}" update -q >&2 ||
  log "warning: apt-get update reported errors; trying the download anyway"

log "apt-get source $SRC_PKG=$SRC_VER"
(cd "$WORK/src" && apt-get "${APT_OPTS[@]}" source -q "$SRC_PKG=$SRC_VER" >&2) ||
  die "could not fetch source $SRC_PKG=$SRC_VER from the Debian archive (if a newer
  libabsl-dev was published, upgrade it: apt-get install libabsl-dev)"

SRC_DIR=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name "$SRC_PKG-*" | head -n1)
[[ -n "$SRC_DIR" && -f "$SRC_DIR/debian/changelog" ]] || die "source not extracted"

# --- Verify: version and Debian patches --------------------------------------
got=$(dpkg-parsechangelog -l "$SRC_DIR/debian/changelog" -S Version)
[[ "$got" == "$SRC_VER" ]] ||
  die "source version $got does not match installed libabsl-dev source $SRC_VER"
if [[ -s "$SRC_DIR/debian/patches/series" ]]; then
  want=$(grep -cvE '^[[:space:]]*(#|$)' "$SRC_DIR/debian/patches/series" || true)
  have=$(grep -cvE '^[[:space:]]*(#|$)' "$SRC_DIR/.pc/applied-patches" 2>/dev/null || true)
  [[ "$want" == "$have" ]] ||
    die "Debian patches not applied ($have of $want); dpkg-source -x should apply them"
  log "source $got with $have Debian patches applied"
fi

# One TSAN-only fix on top, backported from upstream Abseil (later releases
# have it verbatim in Mutex::IncrementSynchSem; abseil-cpp issues #760, #1239):
# Mutex hides its internal synchronization from TSAN, so waking a waiter
# (Waiter::Post's atomic on the waiter's ThreadIdentity) is reported as racing
# with the mmap in LowLevelAlloc that created that identity in the waiter's
# thread -- a false positive on any CondVar/Mutex hand-off to a new thread.
# It only adds TSAN annotations to a .cc file: headers, ABI and non-TSAN
# behaviour are unchanged.
log "applying the upstream TSAN annotation fix to mutex.cc"
patch -d "$SRC_DIR" -p1 --forward --no-backup-if-mismatch >&2 <<'PATCH'
--- a/absl/synchronization/mutex.cc
+++ b/absl/synchronization/mutex.cc
@@ -563,7 +563,12 @@
   if (mu) {
     ABSL_TSAN_MUTEX_PRE_DIVERT(mu, 0);
   }
+  // We miss synchronization around passing PerThreadSynch between threads
+  // since it happens inside of the Mutex code, so we need to ignore all
+  // accesses to the object.
+  ABSL_ANNOTATE_IGNORE_READS_AND_WRITES_BEGIN();
   PerThreadSem::Post(w->thread_identity());
+  ABSL_ANNOTATE_IGNORE_READS_AND_WRITES_END();
   if (mu) {
     ABSL_TSAN_MUTEX_POST_DIVERT(mu, 0);
   }
PATCH

# --- Build and install (libraries only, no tests) ----------------------------
# Flags as Debian builds it (-g -O2, no -DNDEBUG, C++17, static libs) plus TSAN.
BUILD="$WORK/build"
STAGE="$WORK/stage"
log "configuring"
cmake -S "$SRC_DIR" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE= \
  -DCMAKE_CXX_FLAGS="-g -O2 -fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_C_FLAGS="-g -O2 -fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_CXX_STANDARD=17 -DABSL_PROPAGATE_CXX_STD=ON \
  -DBUILD_SHARED_LIBS=OFF -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DBUILD_TESTING=OFF -DABSL_BUILD_TESTING=OFF -DABSL_ENABLE_INSTALL=ON \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib >&2
log "building with -j$(nproc)"
cmake --build "$BUILD" -j"$(nproc)" >&2
DESTDIR="$STAGE" cmake --install "$BUILD" >/dev/null

# The headers must be byte-identical to libabsl-dev's: same options.h (inline
# namespace, std:: vs absl:: types), hence the same ABI as the .so files that
# libgrpc++ and libprotobuf link.
if ! diff -rq "$STAGE$PREFIX/include/absl" /usr/include/absl >&2; then
  die "instrumented Abseil headers differ from /usr/include/absl (libabsl-dev)"
fi
ns=$(sed -n 's/^#define ABSL_OPTION_INLINE_NAMESPACE_NAME //p' \
  "$STAGE$PREFIX/include/absl/base/options.h")
{
  echo "source: $SRC_PKG $SRC_VER (libabsl-dev $BIN_VER), inline namespace: $ns"
  echo "compiler: $(c++ --version | head -n1)"
  echo "flags: -g -O2 -fsanitize=thread -fno-omit-frame-pointer, static, PIC, C++17"
  echo "recipe: $RECIPE (Debian patches + upstream IncrementSynchSem TSAN annotation)"
  echo "built: $(date -u +%FT%TZ)"
} >"$STAGE$PREFIX/BUILD-INFO"

# Publish atomically: the prefix only exists once complete.
rm -rf "$PREFIX"
mv "$STAGE$PREFIX" "$PREFIX"
rm -rf "$WORK"
log "done in $((SECONDS - start))s: $PREFIX (absl::$ns)"
echo "$PREFIX" >&3
