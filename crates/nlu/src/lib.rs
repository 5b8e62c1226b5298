//! Intent classification, entities, sentiment and acoustic emotion cues for Chinese and English. Sans-IO.
