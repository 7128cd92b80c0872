"""`watch`: the whole host's split locks and bus locks, live, for people and fleets."""
