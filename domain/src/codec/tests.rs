//! Round trips through the JSON edge.
