"""How long each customer text may be: one number each, for the reader, the org policy's field
catalogue, the schema's columns and the OpenAPI document alike."""

MOBILE = 20  # E.164 has at most 15 digits; the column leaves room
EMAIL = 255
EXTERNAL_ID = 250
NAME = 100  # firstname, lastname
ACCOUNT_ID = 255
TILL_CODE = 50  # registered_till, associated_with, and a till's own code
REFERRAL_CODE = 32
FIELD_VALUE = 250  # a custom or extended field's value, unless its type says less
USER_CONTEXT = 255  # each user-context header, as the audit record keeps it
REASON = 500  # why a member-care user changed a customer or decided an identity change
