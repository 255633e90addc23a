# Shared helpers of the shell suites in compat/ (sourced, not run).
#
# Every suite talks to whatever S3 endpoint the environment names, so it runs against
# `s3quorum dev` (compat/run.sh) or any other S3 service:
#   AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (us-east-1)
# A suite stops at its first failure with a non-zero exit status and names the failing line.

: "${AWS_ENDPOINT_URL:?set AWS_ENDPOINT_URL to the S3 endpoint, e.g. http://127.0.0.1:9000}"
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_REGION="$AWS_DEFAULT_REGION"
export AWS_PAGER=""

SUITE="$(basename "$0" .sh)"
# set -E lets the ERR trap fire inside functions too.
set -E
trap 'echo "FAIL [$SUITE] line $LINENO: $BASH_COMMAND" >&2' ERR

WORK="$(mktemp -d "${TMPDIR:-/tmp}/s3q-$SUITE.XXXXXX")"
cleanup_work() { rm -rf "$WORK"; }
trap cleanup_work EXIT

step() { echo "-- [$SUITE +${SECONDS}s] $*"; }

fail() {
    echo "FAIL [$SUITE]: $*" >&2
    exit 1
}

# A bucket name nobody else uses: lowercase, 3-63 characters.
bucket_name() { echo "compat-$1-$(head -c 6 /dev/urandom | xxd -p)"; }

# rand_file PATH BYTES: incompressible content from /dev/urandom.
rand_file() {
    mkdir -p "$(dirname "$1")"
    head -c "$2" /dev/urandom >"$1"
}

# same A B: byte-identical or the suite fails.
same() { cmp -- "$1" "$2" || fail "$1 and $2 differ"; }

# expect_error PATTERN CMD...: CMD must fail and its stderr must match the extended regex.
expect_error() {
    local pattern="$1" err
    shift
    if err="$("$@" 2>&1 >/dev/null)"; then
        fail "expected an error matching /$pattern/ from: $*"
    fi
    grep -Eq -- "$pattern" <<<"$err" || fail "error of '$*' does not match /$pattern/: $err"
}

MIB=$((1024 * 1024))
