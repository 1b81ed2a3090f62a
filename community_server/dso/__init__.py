"""DSO inputs: OpenADR 3 VEN and the plain HTTP DSO API, producing stored, audited cap series."""
