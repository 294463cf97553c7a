// Package sim simulates ads engagement data whose true probabilities are
// known, so models can be judged against the Bayes-optimal log loss.
//
// # World
//
// A World holds every persistent latent — topic vectors of items and ads,
// long-term interests of users, advertiser quality — as a pure function of
// the config, the scale and the seed: entity e of kind k draws from its own
// PCG stream seeded by (seed, splitmix64(k, e)). NewWorld builds it.
//
// # Generation
//
// Generate plays every user's timeline (sessions with a drifting short-term
// topic, organic engagements, ad requests, the logging policy's candidates
// and shown ads, the user's reactions) on parallel workers and streams the
// seven tables to disk in user order, so memory is the catalog plus a few
// users in flight and the output is byte-identical for a seed whatever the
// worker count.
//
// # Truth
//
// Each task's log-odds is a base rate plus named components (long_term,
// short_term, quality, context, position) that are functions of logged
// columns; Terms exposes the decomposition and TrueProb the probabilities
// for any (request, ad, position). Open rebuilds a data directory's world
// from its manifest and indexes its events, so Truth.TrueProb scores any
// pair from the files alone. docs/SIMULATOR.md gives the equations.
package sim
