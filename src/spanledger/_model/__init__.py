"""The shapes everything else derives from: one definition of a call's fields and of the usage metrics, and the rows queries return."""
