-- Consent to marketing of value-added services: only by explicit opt-in,
-- when it was given (NULL: none, or withdrawn).
ALTER TABLE ra_applications ADD COLUMN marketing_at BIGINT;
CREATE INDEX ra_applications_updated ON ra_applications (status, updated_at);
