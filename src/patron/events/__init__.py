"""Events (events.md): what each change of a customer tells the rest of the retailer's stack."""
