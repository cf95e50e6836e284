"""Sequence models built on the fused layers: forecasting, seq2seq (grapheme-to-phoneme), sketch
classification (pen strokes) and video classification (frames)."""
