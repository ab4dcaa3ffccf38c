"""Audio--sheet music cross-modal retrieval.

A PyTorch rebuild of the MSMD audio--sheet retrieval system (Dorfer et al.):
MSMD-layout data built from real scores, two-branch CNN embeddings joined by a
CCA projection layer, snippet retrieval and piece identification.
"""

__version__ = "0.2.0"
