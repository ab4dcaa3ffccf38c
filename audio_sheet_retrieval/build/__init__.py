"""Building MSMD-layout data from real scores: engrave, align, synthesize, featurize."""
