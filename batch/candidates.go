package batch

import (
	"fmt"

	"github.com/tandemml/tandem/data"
)

// LoadCandidates reads, for every request of d, up to perRequest of its
// logged candidates that were not shown, in file order (the logging
// policy's scored set minus the impressions). A candidate of an unknown
// request or ad is an error naming the file.
func (d *Data) LoadCandidates(dir string, perRequest int) (map[int32][]int32, error) {
	byID := make(map[int64]int32, len(d.Requests))
	for i, r := range d.Requests {
		byID[r.ID] = int32(i)
	}
	out := map[int32][]int32{}
	path := tablePath(dir, data.TableCandidates)
	err := data.ForEach(dir, data.TableCandidates, 8192, func(rows []data.Candidate) error {
		for _, c := range rows {
			ri, ok := byID[c.RequestID]
			if !ok {
				return fmt.Errorf("%s: candidate of unknown request_id %d", path, c.RequestID)
			}
			a, ok := d.AdRow[c.AdID]
			if !ok {
				return fmt.Errorf("%s: request %d: candidate of unknown ad_id %d", path, c.RequestID, c.AdID)
			}
			if c.Shown || len(out[ri]) >= perRequest {
				continue
			}
			out[ri] = append(out[ri], a)
		}
		return nil
	})
	return out, err
}
