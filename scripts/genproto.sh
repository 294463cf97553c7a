#!/usr/bin/env bash
# Regenerates the gRPC code under proto/ from its .proto files with Debian's
# protobuf-compiler (protoc) and the plugins pinned in go.mod's tool block.
# With --check it fails when the committed code differs from what it
# generates (CI runs that).
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
if [[ ${1:-} == --check ]]; then check=true; fi
if ! command -v protoc >/dev/null; then
	echo "protoc not found: apt-get install protobuf-compiler" >&2
	exit 1
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc

out=proto
if $check; then
	out=$bin/out
	mkdir -p "$out"
fi
protos=$(cd proto && find . -name '*.proto' | sort)
(cd proto && PATH="$bin:$PATH" protoc -I . \
	--go_out="$([[ $out = /* ]] && echo "$out" || echo ../$out)" --go_opt=paths=source_relative \
	--go-grpc_out="$([[ $out = /* ]] && echo "$out" || echo ../$out)" --go-grpc_opt=paths=source_relative \
	$protos)

if $check; then
	status=0
	for f in $(cd "$out" && find . -name '*.go' | sort); do
		if ! cmp -s "$out/$f" "proto/$f"; then
			echo "proto/$f is stale: run scripts/genproto.sh" >&2
			status=1
		fi
	done
	for f in $(cd proto && find . -name '*.pb.go' | sort); do
		[[ -f $out/$f ]] || { echo "proto/$f is not generated from any .proto" >&2; status=1; }
	done
	exit $status
fi
