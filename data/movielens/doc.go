// Package movielens loads the MovieLens latest-small data set (GroupLens,
// https://grouplens.org/datasets/movielens/) and maps it onto tandem's
// tables, so that the models can be trained and evaluated on real
// engagement data as well as on simulated data.
//
// # Files
//
// [Load] reads movies.csv (movieId,title,genres), ratings.csv
// (userId,movieId,rating,timestamp) and tags.csv
// (userId,movieId,tag,timestamp) from one directory; links.csv is not
// used. Timestamps are Unix seconds. Every parse error names the file, the
// line and the column, as in
//
//	movielens: ratings.csv: line 5: column "rating": strconv.ParseFloat: parsing "x": invalid syntax
//
// A rating or tag of a movie that movies.csv does not list is an error, not
// a silently dropped row.
//
// # Mapping
//
// MovieLens has no organic content and no ads, so every movie is both an
// item of kind "ad" and an ad, with item_id = ad_id = movieId:
//
//   - category is the index of the movie's first listed genre in [Genres],
//     the fixed sorted list of the 20 MovieLens genres, "(no genres
//     listed)" included;
//   - content_emb is a multi-hot of the movie's genres over [Genres], so its
//     width is [EmbDim] = 20;
//   - ads have advertiser 0, campaign 0, product "standard", bid 1,
//     quality scores 0, are active and eligible on "home_feed" only.
//
// Users are the userIds with at least one rating or tag. MovieLens has no
// user features: country, device and age_bucket are "unknown", activity
// and account_age_days are 0 and pretrained_emb is empty (width 0).
//
// Events are the ratings and tags: a rating of 4 or more ([LongClickRating])
// is a "long_click", a lower one a "click", and every tag application is a
// "save". All events are on the one surface [SurfaceHomeFeed], ts_ms is the
// timestamp times 1000, and the events are sorted by (user_id, ts_ms,
// item_id, action name), so the order is deterministic.
//
// # What is missing
//
// MovieLens records only positive interactions: there are no impressions
// without engagement, no hides and no requests, so there are no negatives.
// Anything needing them (click-through labels, requests, candidates) must
// be built on top, for example by sampling negatives per request; requests
// on MovieLens use the one surface [SurfaceHomeFeed] with the one view type
// [ViewTypeGrid].
package movielens
