//! The book's listings.
