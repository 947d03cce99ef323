"""vis: one module per technique of "Visualizing and Understanding CNNs" (CS231n)."""
