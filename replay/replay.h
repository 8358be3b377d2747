/*
 * replay.h - `respan-collector replay`: stored traces through the pipeline,
 * or to a running collector.
 *
 * core/main.c hands the command its arguments (after the word "replay")
 * and the two embedded default configs, without and with a Respan API key,
 * which a replay without --config uses exactly as the collector would.
 */
#ifndef RC_REPLAY_H
#define RC_REPLAY_H

/* Runs the command; returns the process exit status: 0 when every span
 * read was accepted and delivered (or persisted), 1 when anything was
 * rejected, failed or malformed, 2 for a usage error, 130 when
 * interrupted. */
int rc_replay_main(int argc, char **argv, const char *default_config,
                   const char *respan_default_config);

#endif
