"""Monthly cost estimates: the price table, the usage scenarios, the what-ifs."""
