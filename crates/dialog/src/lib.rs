//! Dialog scripts as data: format, validator and a sans-IO interpreter.
