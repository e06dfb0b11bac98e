"""Everything that runs on RQ workers: delivery to Customer.io, replay, housekeeping."""
