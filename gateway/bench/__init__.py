"""`tipring bench …`: benchmarks anyone can run on the box; they print tables, never assert."""
