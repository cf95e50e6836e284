"""Sequence models built on the fused layers: forecasting, seq2seq (grapheme-to-phoneme), sketch
classification (pen strokes), video classification (frames) and polyphonic music (piano rolls)."""
