//! Integration tests of the compiler library. One binary; one module per concern.

mod bytecode;
mod comments;
mod explain;
mod hostile;
