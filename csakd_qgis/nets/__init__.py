"""Pure-torch networks (CSAKD fusion, DODN-style single-image SR) and their losses."""
