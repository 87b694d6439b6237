"""Reports: change classification, the published site and email."""
