//go:build race

package tower

const raceEnabled = true
