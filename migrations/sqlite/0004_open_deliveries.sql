-- The open (not yet delivered, failed or cancelled) deliveries of each (webhook, factor), in
-- order. The worker's claim asks "is there an earlier open delivery for this webhook and
-- factor?" for every candidate: with this index that is one seek into the (small) open set
-- instead of a walk through the factor's whole delivery history (BENCHMARKS.md).

CREATE INDEX webhook_deliveries_open ON webhook_deliveries (webhook_sid, factor_sid, id)
    WHERE status IN ('pending', 'retrying', 'sending');

-- It replaces the index over every delivery ever made, which nothing else reads.
DROP INDEX webhook_deliveries_order;
