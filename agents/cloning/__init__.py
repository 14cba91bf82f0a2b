"""Learning-algorithm cloning: a VSML sub-LSTM trained to implement online backprop (SPEC 6)."""
