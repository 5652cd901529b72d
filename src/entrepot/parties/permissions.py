"""Parties permissions (`domain.noun.verb`). The built-in sales role keeps customers but not their
credit (finance holds parties.customer.credit); purchasing holds parties.supplier.*."""

CUSTOMER_READ = "parties.customer.read"
CUSTOMER_CREATE = "parties.customer.create"
CUSTOMER_UPDATE = "parties.customer.update"
CUSTOMER_ARCHIVE = "parties.customer.archive"
CUSTOMER_CREDIT = "parties.customer.credit"  # change a credit limit or status hold
SUPPLIER_READ = "parties.supplier.read"
SUPPLIER_CREATE = "parties.supplier.create"
SUPPLIER_UPDATE = "parties.supplier.update"
SUPPLIER_ARCHIVE = "parties.supplier.archive"
CUSTOMER_IMPORT = "parties.customer.import"
SUPPLIER_IMPORT = "parties.supplier.import"
