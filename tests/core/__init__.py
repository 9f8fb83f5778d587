"""Table tests of the pure core: plain data in, plain data out, no network or git."""
