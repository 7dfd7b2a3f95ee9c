-- 0012: which estimator gave a site pair's CKA. 'corpus': from the whole-corpus covariances
-- (every pair within compare.cka_budget_mb, and always the matched same-site pairs);
-- 'minibatch': the unbiased minibatch estimator (Nguyen et al. 2021), for the other pairs of the
-- layer x layer heatmap when their covariances would pass the budget. Earlier runs: 'corpus'.
ALTER TABLE site_comparisons ADD COLUMN cka_method VARCHAR DEFAULT 'corpus';
UPDATE site_comparisons SET cka_method = 'corpus' WHERE cka_method IS NULL;
