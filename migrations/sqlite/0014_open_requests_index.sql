-- The per-person cap on open requests counts a person's open requests on every
-- submission: this partial index holds only open requests, so the count reads index
-- entries of open requests only, never the person's whole history.
CREATE INDEX requests_open_by_requester ON requests (requester)
    WHERE state IN ('pending', 'approved', 'active');
