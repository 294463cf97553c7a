#!/usr/bin/env bash
# The project's test command (the README's). Runs every check CI runs:
# formatting, vet, staticcheck, the race-enabled test suite, a cgo-free
# build, and the same for every nested Go module. Each step prints its
# time; the whole run fails past TANDEM_TEST_BUDGET_S (default 18 min).
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${TANDEM_TEST_BUDGET_S:-1080}
start=$(date +%s)

step() {
	local name=$1
	shift
	local t0
	t0=$(date +%s)
	echo "==> $name"
	local left=$((budget - (t0 - start)))
	if ((left <= 0)); then
		echo "FAIL: test run exceeded its ${budget}s budget before $name" >&2
		exit 1
	fi
	# A step that hangs is cut at the budget, not left to CI's own limit.
	if [[ $(type -t "$1") == function ]]; then
		"$@"
	else
		timeout --signal=INT --kill-after=30 "$left" "$@"
	fi
	local now
	now=$(date +%s)
	printf '    %s: %ds (total %ds)\n' "$name" $((now - t0)) $((now - start))
	if ((now - start > budget)); then
		echo "FAIL: test run exceeded its ${budget}s budget" >&2
		exit 1
	fi
}

gofmt_check() {
	local bad
	bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	if [[ -n $bad ]]; then
		echo "gofmt would change:" >&2
		echo "$bad" >&2
		return 1
	fi
}

# Nested modules (e.g. deploy tooling) are checked with their own go.mod.
nested_modules() {
	find . -mindepth 2 -name go.mod -not -path './.git/*' -exec dirname {} \; | sort
}

nested() {
	local m
	for m in $(nested_modules); do
		echo "    module $m"
		go -C "$m" vet ./...
		go -C "$m" test ./...
	done
}

step "gofmt" gofmt_check
step "go vet" go vet ./...
step "staticcheck" go tool staticcheck ./...
step "go test -race" go test -race -count=1 ./...
# The committed PTX must be what clang-16 makes of the kernel source.
ptx_check() {
	if ! command -v clang-16 >/dev/null; then
		if [[ -n ${CI:-} ]]; then
			echo "clang-16 is required in CI (apt-get install clang-16)" >&2
			return 1
		fi
		echo "    skipped: no clang-16 (apt-get install clang-16)"
		return 0
	fi
	./gpu/kernels/gen.sh --check
}
step "committed PTX is current" ptx_check
# Corrupt-Parquet tests skip under -race (checkptr makes a recoverable
# parquet-go panic fatal), so they run here once more without it.
step "go test (corrupt Parquet, no -race)" go test -count=1 -run 'Corrupt|Mutation|Guard|FuzzRead' ./data
# Tests that train models for real, and the refresh job's kill -9 test,
# are too slow under -race; they carry a !race build tag and run here.
step "go test (training, kill -9; no -race)" go test -count=1 -run 'ModelsLearnTiny|TrainEndToEnd|KilledRefresh' ./eval ./cmd/tandem ./refresh
# The PyTorch reference's own tests (the Go parity tests above call it too).
torchref_tests() {
	if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
		if [[ -n ${CI:-} ]]; then
			echo "python3-torch and python3-numpy are required in CI" >&2
			return 1
		fi
		echo "    skipped: /usr/bin/python3 has no torch (apt-get install python3-torch python3-numpy)"
		return 0
	fi
	/usr/bin/python3 -m unittest discover -s tools/torchref
}
step "tools/torchref (PyTorch)" torchref_tests
# The pure-Go twins of the assembly kernels, as a machine without AVX2+FMA
# (or a noasm build) runs them.
step "go vet + test -tags noasm (gemm, kernel)" sh -c 'go vet -tags noasm ./gemm ./kernel && go test -count=1 -tags noasm ./gemm ./kernel'
step "CGO_ENABLED=0 go build" env CGO_ENABLED=0 go build ./...
# The GPU backend is loaded with purego and must work without cgo: its
# tests (bindings, stand-in, kernels, plans) run again in a cgo-free build.
step "CGO_ENABLED=0 go test ./gpu/..." env CGO_ENABLED=0 go test -count=1 ./gpu/...
# The committed gRPC code must be what scripts/genproto.sh generates.
genproto_check() {
	if ! command -v protoc >/dev/null; then
		if [[ -n ${CI:-} ]]; then
			echo "protoc is required in CI (apt-get install protobuf-compiler)" >&2
			return 1
		fi
		echo "    skipped: no protoc (apt-get install protobuf-compiler)"
		return 0
	fi
	./scripts/genproto.sh --check
}
step "generated gRPC code is current" genproto_check
# xDS target resolution is compiled in only with -tags xds.
step "go test -tags xds (serve)" go test -tags xds -count=1 -run XDS ./serve
step "nested modules" nested
echo "ok: all checks passed in $(($(date +%s) - start))s"
