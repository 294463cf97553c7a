# Shortcuts; the scripts are the source of truth (CI calls scripts/test.sh).
.PHONY: test race lint bench demo quality

test:          ## everything CI runs
	./scripts/test.sh

race:          ## the race-enabled test suite alone
	go test -race ./...

lint:          ## formatting, vet and staticcheck
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...
	go tool staticcheck ./...

bench:         ## Go benchmarks (see docs/BENCHMARKS.md for the programs)
	go test -run XXX -bench . -benchmem ./...

demo:          ## the README's main command
	go run ./cmd/tandem demo

quality:       ## generate the quality scale and time it
	go run ./benchmarks/simgen -scale quality -out /tmp/tandem-quality
