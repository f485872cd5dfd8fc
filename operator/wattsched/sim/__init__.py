"""The digital twin: synthetic sites and traces run through the same engine, on a virtual clock."""
