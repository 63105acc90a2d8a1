"""Simulated hardware: the analog line model (`line.LineModel`, with its echo paths in
`echo_paths`) that the simulated tipring adapter and voice modem put behind each port."""
