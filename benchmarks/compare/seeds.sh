#!/usr/bin/env bash
# Runs the paired comparisons of docs/MODELS.md for several training seeds
# on one data directory and prints, per comparison and surface, the mean
# and standard deviation of Δ over the seeds and how many seeds' 95%
# intervals exclude 0.
#
#   benchmarks/compare/seeds.sh DATA OUT [SEED ...]     (default seeds 1 2 3)
#
# For each seed S it trains into OUT/seed-S: L2 and L1 (the product
# models), then the baselines per_surface, global_calib, mlp and l1_mlp,
# and writes each comparison's report to OUT/seed-S/<name>.txt. A seed
# whose models exist is not trained again (a seed cut short trains anew,
# as new versions in the same directory). Run one instance per OUT. Set TANDEM to use a built
# binary (default: go build into OUT) and CONFIG to train with a
# configuration file.
set -euo pipefail
data=${1:?usage: seeds.sh DATA OUT [SEED ...]}
out=${2:?usage: seeds.sh DATA OUT [SEED ...]}
shift 2
seeds=("$@")
((${#seeds[@]})) || seeds=(1 2 3)
cd "$(dirname "$0")/../.."
mkdir -p "$out"
tandem=${TANDEM:-$out/tandem}
[[ -n ${TANDEM:-} ]] || go build -o "$tandem" ./cmd/tandem
go build -o "$out/compare" ./benchmarks/compare
cfg=()
[[ -z ${CONFIG:-} ]] || cfg=(-config "$CONFIG")

comparisons=(
	"unified_vs_per_surface l2 baseline_per_surface captured"
	"calib_view_vs_global l2 baseline_global_calib ece"
	"mmoe_dcn_vs_mlp l2 baseline_mlp captured"
	"l1_mmoe_dcn_vs_mlp l1 baseline_l1_mlp recall"
)
for s in "${seeds[@]}"; do
	m=$out/seed-$s
	if [[ ! -e $m/done ]]; then
		"$tandem" train -data "$data" -out "$m" -model all -seed "$s" "${cfg[@]}" >"$m.train.log" 2>&1
		"$tandem" train -data "$data" -out "$m" -model none -seed "$s" "${cfg[@]}" \
			-baselines per_surface,global_calib,mlp,l1_mlp >>"$m.train.log" 2>&1
		touch "$m/done"
	fi
	for c in "${comparisons[@]}"; do
		read -r name a b metric <<<"$c"
		[[ -s $m/$name.txt ]] || "$out/compare" -data "$data" -models "$m" -a "$a" -b "$b" -metric "$metric" >"$m/$name.txt"
	done
done

# Summary: Δ lines look like "  home_feed  l2 0.6 ... Δ +0.0123  95% [+0.01, +0.02] ..."
# and "recall@100: ... Δ +0.04  95% [...]".
for c in "${comparisons[@]}"; do
	read -r name _ _ metric <<<"$c"
	echo "== $name ($metric), seeds ${seeds[*]}"
	for s in "${seeds[@]}"; do
		awk -v s="$s" '/Δ/ {
			slice = ($1 ~ /^recall/) ? "all" : $1
			for (i = 1; i <= NF; i++) if ($i == "Δ") d = $(i+1)
			match($0, /\[[^]]*\]/); iv = substr($0, RSTART + 1, RLENGTH - 2)
			split(iv, b, ", "); ex = (b[1] + 0 > 0 || b[2] + 0 < 0) ? 1 : 0
			print slice, s, d, ex
		}' "$out/seed-$s/$name.txt"
	done | awk '{ n[$1]++; sum[$1] += $3; sq[$1] += $3 * $3; ex[$1] += $4; order[$1] = order[$1] ? order[$1] : ++k; names[k] = $1 }
		END {
			for (i = 1; i <= k; i++) {
				sl = names[i]; m = sum[sl] / n[sl]
				sd = n[sl] > 1 ? sqrt((sq[sl] - n[sl] * m * m) / (n[sl] - 1)) : 0
				printf "  %-10s Δ mean %+.4f  sd %.4f  (%d seeds; interval excludes 0 in %d)\n", sl, m, sd, n[sl], ex[sl]
			}
		}'
done
