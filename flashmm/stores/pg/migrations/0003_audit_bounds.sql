-- FlashMM schema v3: the audit log's hard ceilings (the store truncates well below them, with
-- a marker) and no rights on it for PUBLIC. The application role's rights are granted by
-- `flashmm db migrate` (flashmm/stores/pg/roles.py): INSERT and SELECT only.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_bounded CHECK (
    octet_length(params::text) <= 65536
    AND octet_length(outcome) <= 16384
    AND octet_length(actor) <= 4096
    AND octet_length(action) <= 4096
    AND octet_length(target) <= 4096
    AND octet_length(request_id) <= 4096
) NOT VALID;

REVOKE ALL ON audit_log FROM PUBLIC;
