-- The one-OS-user check on submit looks for an open principal-tag request of the same
-- person (by jitgate user or by IdC user) for another OS user. These partial indexes
-- hold only open principal-tag requests, ordered by OS user, so the check reads only
-- conflicting rows however many requests a person has open.
CREATE INDEX requests_open_run_as_requester ON requests (requester, os_user)
    WHERE state IN ('pending', 'approved', 'active') AND run_as_mode = 'principal-tag';
CREATE INDEX requests_open_run_as_principal ON requests (principal_id, os_user)
    WHERE state IN ('pending', 'approved', 'active') AND run_as_mode = 'principal-tag';
