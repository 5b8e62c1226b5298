//! Customer CSV parsing: encoding detection, header mapping, phone normalisation, typed attributes. No I/O beyond the reader it is given.
