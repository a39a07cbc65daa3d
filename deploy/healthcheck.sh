#!/bin/bash
# Container health check without curl, wget or grpc_health_probe: bash's /dev/tcp and coreutils.
#   wpsmesh-healthcheck http PORT [PATH]          GET http://127.0.0.1:PORT/PATH (default /health), 200 or fail
#   wpsmesh-healthcheck grpc PORT [SERVICE]       grpc.health.v1.Health/Check over cleartext HTTP/2,
#                                                 SERVING or fail (SERVICE empty: the whole server)
#   wpsmesh-healthcheck auto                      by the role PID 1 runs (`wpsmesh edge|storage|node`,
#                                                 port from its `--listen`): edge /health, storage
#                                                 and node their service's gRPC health
# Exit 0 when healthy, 1 otherwise; at most TIMEOUT seconds (default 3).
set -uo pipefail
mode=${1:-}
port=${2:-}
arg=${3:-}
timeout=${WPSMESH_HEALTHCHECK_TIMEOUT:-3}

# printf escape for a byte value.
byte() { printf '\\x%02x' "$1"; }

http_check() {
  local path=${arg:-/health}
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
  local status
  IFS= read -r status <&3 || return 1
  [[ $status =~ ^HTTP/1\.[01]\ 200 ]]
}

grpc_check() {
  local service=$arg path=/grpc.health.v1.Health/Check authority=localhost
  ((${#service} < 120)) || return 1
  # HPACK, literal header fields without indexing, new names (no Huffman coding).
  local headers="\\x83\\x86"                                   # :method POST, :scheme http
  headers+="\\x04$(byte ${#path})$path"                      # :path
  headers+="\\x01$(byte ${#authority})$authority"            # :authority
  headers+="\\x00\\x0ccontent-type\\x10application/grpc"     # content-type
  headers+="\\x00\\x02te\\x08trailers"                       # te
  local hlen
  hlen=$(printf "$headers" | wc -c)
  # HealthCheckRequest { service = 1 }, behind the gRPC frame prefix (uncompressed, length).
  local message="" mlen=0
  if [ -n "$service" ]; then
    message="\\x0a$(byte ${#service})$service"
    mlen=$((${#service} + 2))
  fi
  local dlen=$((mlen + 5))
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  {
    printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
    printf '\x00\x00\x00\x04\x00\x00\x00\x00\x00'                            # SETTINGS
    printf "\\x00$(byte $((hlen >> 8)))$(byte $((hlen & 255)))\\x01\\x04\\x00\\x00\\x00\\x01" # HEADERS, END_HEADERS, stream 1
    printf "$headers"
    printf "\\x00\\x00$(byte $dlen)\\x00\\x01\\x00\\x00\\x00\\x01"           # DATA, END_STREAM, stream 1
    printf "\\x00\\x00\\x00\\x00$(byte $mlen)$message"
    printf '\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00' # GOAWAY: no more streams
  } >&3
  # The answer's DATA frame holds HealthCheckResponse { status = SERVING (1) }: 00 00000002 0801.
  # The server closes the connection after the stream (GOAWAY); head stops early once it has it.
  od -An -v -tx1 <&3 | tr -d ' \n' | grep -q '00000000020801'
}

if [ "$mode" = auto ]; then
  # The container's command line: wpsmesh [--config F] ROLE [--listen HOST:PORT] ...
  mapfile -d "" argv <"/proc/${WPSMESH_HEALTHCHECK_PID:-1}/cmdline"
  role="" listen=""
  for ((i = 0; i < ${#argv[@]}; i++)); do
    case ${argv[i]} in
      edge|storage|node|up) [ -z "$role" ] && role=${argv[i]} ;;
      --listen) listen=${argv[i+1]:-} ;;
      --listen=*) listen=${argv[i]#--listen=} ;;
    esac
  done
  case $role in
    storage) mode=grpc port=${listen##*:} arg=wpsmesh.storage.v1.StorageService; port=${port:-8800} ;;
    node) mode=grpc port=${listen##*:} arg=wpsmesh.process.v1.ProcessService; port=${port:-8001} ;;
    *) mode=http port=${listen##*:} arg=/health; port=${port:-9000} ;;
  esac
fi
[[ $port =~ ^[0-9]+$ ]] || { echo "usage: $0 http|grpc PORT [PATH|SERVICE] | auto" >&2; exit 2; }

case $mode in
  http) timeout "$timeout" bash -c "$(declare -f http_check); port=$port arg='$arg'; http_check" ;;
  grpc) timeout "$timeout" bash -c "$(declare -f grpc_check byte); port=$port arg='$arg'; grpc_check" ;;
  *) echo "usage: $0 http|grpc PORT [PATH|SERVICE]" >&2; exit 2 ;;
esac
