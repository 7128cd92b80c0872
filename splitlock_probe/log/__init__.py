"""`log`: read a kernel log (live, saved, or stdin), tally its trap lines per
process, and enrich them from the live host. Renders nothing."""
