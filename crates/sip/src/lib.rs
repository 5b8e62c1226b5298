//! SIP messages, transactions, dialogs, digest auth and SDP offer/answer. Sans-IO.
