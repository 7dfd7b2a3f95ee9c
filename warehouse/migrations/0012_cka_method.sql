-- 0012: which estimator gave a site pair's CKA. 'corpus': from the whole-corpus covariances
-- (when every site pair's fit compare.cka_budget_mb); 'minibatch': the unbiased minibatch
-- estimator (Nguyen et al. 2021), for every pair of a comparison whose covariances would pass
-- the budget, matched pairs included. Earlier runs: 'corpus'.
ALTER TABLE site_comparisons ADD COLUMN cka_method VARCHAR DEFAULT 'corpus';
UPDATE site_comparisons SET cka_method = 'corpus' WHERE cka_method IS NULL;
