//! Integration tests of the compiler library. One binary; one module per concern.

mod bytecode;
mod comments;
mod dsl_lines;
mod explain;
mod fmt;
mod hostile;
mod scope;
