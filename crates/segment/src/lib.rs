//! Segmentation rules: parse, compile and evaluate CEL rules over customer attributes. Sans-IO.
