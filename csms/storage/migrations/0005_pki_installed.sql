-- When the charger accepted a certificate we issued (CertificateSigned answered Accepted): which
-- certificate it holds, for operators, and the point after which the older ones are superseded.
ALTER TABLE pki_issued_certificates ADD COLUMN installed_at timestamptz;
