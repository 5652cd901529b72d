"""The CSV import and export routes every bulk-loadable kind has (`POST /imports/{kind}`,
`GET /exports/{kind}`): one shape for products, customers, suppliers, supplier items, price lists and
stock, each domain naming its importer, exporter and permissions."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO, Annotated, Any

from fastapi import APIRouter, UploadFile
from fastapi.responses import PlainTextResponse

from entrepot.api.deps import Requires
from entrepot.catalog.csvio import ImportFailed, ImportReport, decode_upload
from entrepot.catalog.schemas import ImportResult
from entrepot.db.uow import UnitOfWork


def add_csv_routes(router: APIRouter, kind: str, *, run_import: Callable[..., ImportReport],
                   run_export: Callable[[UnitOfWork, IO[str]], Any], import_permission: str, read_permission: str,
                   import_summary: str | None = None, export_summary: str | None = None) -> None:
    """Add `POST /imports/{kind}` (multipart `file`, `?dry_run=`; all or nothing: a 422 `import_failed`
    naming every bad row) and `GET /exports/{kind}` (text/csv, the import's columns) to `router`."""

    def import_upload(file: UploadFile, uow: Annotated[UnitOfWork, Requires(import_permission)],
                      dry_run: bool = False) -> ImportResult:
        report = run_import(uow, decode_upload(file.file.read()), dry_run=dry_run)
        if not report.ok:
            raise ImportFailed(report)
        if dry_run:
            uow.rollback()  # now: held past the answer, its write lock blocks the Idempotency-Key record
        else:
            uow.commit()
        return ImportResult(**report.as_dict())

    def export_csv(uow: Annotated[UnitOfWork, Requires(read_permission)]) -> PlainTextResponse:
        buffer = io.StringIO()
        run_export(uow, buffer)
        return PlainTextResponse(buffer.getvalue(), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'})

    # Annotations are strings under `from __future__ import annotations`; these closures need
    # real objects so FastAPI sees the per-kind permission dependency.
    import_upload.__annotations__ = {"file": UploadFile, "uow": Annotated[UnitOfWork, Requires(import_permission)],
                                     "dry_run": bool, "return": ImportResult}
    export_csv.__annotations__ = {"uow": Annotated[UnitOfWork, Requires(read_permission)],
                                  "return": PlainTextResponse}
    name = kind.replace("-", "_")
    router.add_api_route(f"/imports/{kind}", import_upload, methods=["POST"], response_model=ImportResult,
                         summary=import_summary or f"Import {kind} from a CSV upload (upsert; all or nothing)",
                         name=f"import_{name}")
    router.add_api_route(f"/exports/{kind}", export_csv, methods=["GET"], response_class=PlainTextResponse,
                         summary=export_summary or f"{kind} as CSV (the import's columns)", name=f"export_{name}")
