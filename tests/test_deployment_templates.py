"""The ARM templates in ``deploymentTemplates/``, read as ARM would read them.

Nothing here talks to Azure. The checks catch what a deployment would only
reveal after minutes: an undeclared parameter, an app setting ``config.py``
does not declare (a typo), a declared setting Azure never gets, a secret with
a default, a startup command that names nothing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping

import pytest
from gunicorn.workers.base import Worker

from config import DefaultConfig
from state_engine.settings import declared
from state_engine.stores.registry import BACKENDS, backend_settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "deploymentTemplates"
WITH_RG = TEMPLATES_DIR / "deployUseExistResourceGroup" / "template-BotApp-with-rg.json"
NEW_RG = TEMPLATES_DIR / "deployWithNewResourceGroup" / "template-BotApp-new-rg.json"
TEMPLATES = [WITH_RG, NEW_RG]
PARAMETER_FILES = {
    WITH_RG: WITH_RG.with_name("parameters-for-template-BotApp-with-rg.json"),
    NEW_RG: NEW_RG.with_name("parameters-for-template-BotApp-new-rg.json"),
}
STARTUP_COMMAND = (
    "gunicorn --bind 0.0.0.0 --worker-class aiohttp.worker.GunicornWebWorker --timeout 600 app:APP"
)

# Every setting config.py and the backend registry declare, by its environment variable.
DECLARED_SETTINGS = frozenset(item.name for _, item in declared(DefaultConfig)) | frozenset(
    item.name for item in backend_settings()
)
# Used only by `python app.py` on a developer's machine: gunicorn binds the
# address itself, and Azure never selects the SQLite backend.
LOCAL_ONLY_SETTINGS = frozenset({"HOST", "PORT"}) | frozenset(
    item.name for _, item in declared(BACKENDS["sqlite"].settings_class)
)
# Right at their defaults in Azure, so the templates leave them unset.
AZURE_DEFAULT_SETTINGS = frozenset({"BotOpenIdMetadata"})
# Read by App Service itself, not by the bot.
PLATFORM_SETTINGS = frozenset({"SCM_DO_BUILD_DURING_DEPLOYMENT"})
SECRET_SETTING = re.compile(r"PASSWORD|KEY|CONNECTION_STRING")

PARAMETER_USE = re.compile(r"\bparameters\('([^']+)'\)")
VARIABLE_USE = re.compile(r"\bvariables\('([^']+)'\)")


def load(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _is_inner_deployment(node: Mapping[str, Any]) -> bool:
    return node.get("expressionEvaluationOptions", {}).get("scope") == "inner" and "template" in node


def expressions(node: Any) -> Iterator[str]:
    """Every ARM expression in one template scope (keys too), not inside inner-scope nested templates."""
    if isinstance(node, dict):
        inner = _is_inner_deployment(node)
        for key, value in node.items():
            yield from expressions(key)
            if not (inner and key == "template"):
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)
    elif isinstance(node, str) and node.startswith("[") and not node.startswith("[["):
        yield node


def nested_templates(template: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [
        resource["properties"]["template"]
        for resource in template.get("resources", [])
        if resource["type"] == "Microsoft.Resources/deployments"
        and _is_inner_deployment(resource["properties"])
    ]


def scopes(template: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A template and every inner-scope template it nests: each resolves its own names."""
    found = [template]
    for nested in nested_templates(template):
        found.extend(scopes(nested))
    return found


def resource(template: Dict[str, Any], resource_type: str) -> Dict[str, Any]:
    """The one resource of a type, wherever in the nested scopes it is."""
    matches = [
        item for scope in scopes(template) for item in scope["resources"] if item["type"] == resource_type
    ]
    assert len(matches) == 1, f"expected one {resource_type}, found {len(matches)}"
    return matches[0]


def scope_of(template: Dict[str, Any], resource_type: str) -> Dict[str, Any]:
    for scope in scopes(template):
        if any(item["type"] == resource_type for item in scope["resources"]):
            return scope
    raise AssertionError(f"no {resource_type}")


def resolve(scope: Dict[str, Any], value: str) -> str:
    """A literal, or a value that is exactly one variable (followed to its literal)."""
    match = re.fullmatch(r"\[variables\('([^']+)'\)\]", value)
    return resolve(scope, scope["variables"][match.group(1)]) if match else value


def app_settings(template: Dict[str, Any]) -> Dict[str, str]:
    site = resource(template, "Microsoft.Web/sites")
    pairs = site["properties"]["siteConfig"]["appSettings"]
    names = [pair["name"] for pair in pairs]
    assert len(names) == len(set(names)), f"duplicate app settings: {names}"
    return {pair["name"]: pair["value"] for pair in pairs}


def startup_command(path: Path = WITH_RG) -> str:
    template = load(path)
    site = resource(template, "Microsoft.Web/sites")
    command = site["properties"]["siteConfig"]["appCommandLine"]
    return resolve(scope_of(template, "Microsoft.Web/sites"), command)


ALL_JSON = sorted(TEMPLATES_DIR.rglob("*.json"))


def test_the_templates_and_their_parameter_files_exist():
    assert set(TEMPLATES) | set(PARAMETER_FILES.values()) <= set(ALL_JSON)


@pytest.mark.parametrize("path", ALL_JSON, ids=lambda p: p.name)
def test_every_file_is_valid_json_with_a_schema(path: Path):
    document = load(path)
    assert document["$schema"].startswith("https://schema.management.azure.com/schemas/")
    assert document["contentVersion"] == "1.0.0.0"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_every_parameter_and_variable_used_is_declared_and_every_declared_one_used(path: Path):
    for scope in scopes(load(path)):
        used = list(expressions(scope))
        used_parameters = {name for text in used for name in PARAMETER_USE.findall(text)}
        used_variables = {name for text in used for name in VARIABLE_USE.findall(text)}
        declared_parameters = set(scope.get("parameters", {}))
        declared_variables = set(scope.get("variables", {}))
        assert used_parameters - declared_parameters == set(), "used but not declared"
        assert used_variables - declared_variables == set(), "used but not declared"
        assert declared_parameters - used_parameters == set(), "declared but never used"
        assert declared_variables - used_variables == set(), "declared but never used"


def test_the_new_group_template_deploys_exactly_the_existing_group_template():
    """One source of truth: the nested template is the existing-group template, verbatim,
    and it receives every one of its parameters."""
    outer = load(NEW_RG)
    inner = load(WITH_RG)
    (deployment,) = [r for r in outer["resources"] if r["type"] == "Microsoft.Resources/deployments"]
    assert deployment["properties"]["template"] == inner
    assert set(deployment["properties"]["parameters"]) == set(inner["parameters"])
    assert deployment["resourceGroup"] == "[parameters('groupName')]"
    (group,) = [r for r in outer["resources"] if r["type"] == "Microsoft.Resources/resourceGroups"]
    assert group["name"] == "[parameters('groupName')]"
    assert "subscriptionDeploymentTemplate.json" in outer["$schema"]
    for name, declaration in inner["parameters"].items():
        if name in outer["parameters"]:
            assert outer["parameters"][name]["type"] == declaration["type"], name
            assert outer["parameters"][name].get("allowedValues") == declaration.get("allowedValues"), name


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_parameter_files_name_only_declared_parameters_and_hold_no_secret(path: Path):
    declared = load(path)["parameters"]
    given = load(PARAMETER_FILES[path])["parameters"]
    assert set(given) - set(declared) == set()
    required = {
        name for name, item in declared.items()
        if "defaultValue" not in item and item["type"].lower() != "securestring"
    }
    assert required - set(given) == set(), "every required parameter has a place to fill in"
    secure = {
        name for name, item in declared.items() if item["type"].lower() in ("securestring", "secureobject")
    }
    assert secure & set(given) == set(), "secrets are passed on the command line, never kept in a file"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_no_secret_parameter_has_a_default(path: Path):
    for scope in scopes(load(path)):
        for name, item in scope["parameters"].items():
            if item["type"].lower() in ("securestring", "secureobject"):
                assert "defaultValue" not in item, name
    assert load(path)["parameters"]["appSecret"]["type"] == "securestring"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_app_settings_are_exactly_what_config_declares(path: Path):
    assert LOCAL_ONLY_SETTINGS | AZURE_DEFAULT_SETTINGS <= DECLARED_SETTINGS, "no longer declared"
    expected = (DECLARED_SETTINGS - LOCAL_ONLY_SETTINGS - AZURE_DEFAULT_SETTINGS) | PLATFORM_SETTINGS
    settings = set(app_settings(load(path)))
    assert expected - settings == set(), "config.py declares these, the template never sets them"
    assert settings - expected == set(), "the template sets these, nothing declares them"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_secrets_come_from_parameters_and_list_keys_never_literals(path: Path):
    settings = app_settings(load(path))
    for name, value in settings.items():
        if SECRET_SETTING.search(name):
            assert value.startswith("["), f"{name} is a literal"
    assert "parameters('appSecret')" in settings["MicrosoftAppPassword"]
    assert "listKeys(" in settings["COSMOS_DB_PRIMARY_KEY"]
    assert "listKeys(" in settings["BLOB_CONNECTION_STRING"]
    assert "listKeys(" in settings["TABLE_CONNECTION_STRING"]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_literal_app_settings_are_values_config_accepts(path: Path):
    literals = {
        name: value for name, value in app_settings(load(path)).items() if not value.startswith("[")
    }
    config = DefaultConfig.from_env(literals)
    assert config.STATE_COMMAND_ENABLED is False
    assert config.DEV_STATE_ENDPOINT is False


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_the_web_app_is_linux_python_311_with_the_startup_command(path: Path):
    template = load(path)
    plan = resource(template, "Microsoft.Web/serverfarms")
    assert plan["kind"] == "linux" and plan["properties"]["reserved"] is True
    site = resource(template, "Microsoft.Web/sites")
    config = site["properties"]["siteConfig"]
    assert site["kind"] == "app,linux"
    assert site["properties"]["httpsOnly"] is True
    assert config["linuxFxVersion"] == "PYTHON|3.11"
    assert config["alwaysOn"] is True
    assert config["healthCheckPath"] == "/healthz"
    assert startup_command(path) == STARTUP_COMMAND
    assert app_settings(template)["SCM_DO_BUILD_DURING_DEPLOYMENT"] == "true"


def test_the_startup_command_names_an_aiohttp_application_and_worker():
    argv = shlex.split(startup_command())
    assert argv[0] == "gunicorn"
    worker_path = argv[argv.index("--worker-class") + 1]
    module_name, _, class_name = worker_path.rpartition(".")
    worker = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    assert issubclass(worker, Worker)

    module, _, attribute = argv[-1].partition(":")
    # A separate interpreter: importing app builds the app from the environment.
    probe = (
        "import importlib, sys; from aiohttp import web; "
        f"app = getattr(importlib.import_module({module!r}), {attribute!r}); "
        "sys.exit(0 if isinstance(app, web.Application) else 3)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("Microsoft")}
    env.update(STORAGE="memory", MicrosoftAppId="", MicrosoftAppPassword="")
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_the_azure_bot_is_single_tenant_or_managed_identity_and_matches_the_app(path: Path):
    template = load(path)
    for scope in scopes(template):
        assert set(scope["parameters"]["appType"]["allowedValues"]) == {"SingleTenant", "UserAssignedMSI"}
        assert scope["parameters"]["appType"]["defaultValue"] == "SingleTenant"
    bot = resource(template, "Microsoft.BotService/botServices")
    properties = bot["properties"]
    settings = app_settings(template)
    assert bot["kind"] == "azurebot"
    assert properties["msaAppType"] == settings["MicrosoftAppType"]
    assert properties["msaAppId"] == settings["MicrosoftAppId"]
    assert properties["msaAppTenantId"] == settings["MicrosoftAppTenantId"]
    assert "variables('identityId')" in properties["msaAppMSIResourceId"]
    assert properties["endpoint"] == (
        "[concat('https://', reference(variables('siteId'), '2022-09-01').defaultHostName, '/api/messages')]"
    )
    identity = resource(template, "Microsoft.ManagedIdentity/userAssignedIdentities")
    assert identity["condition"] == "[variables('useMsi')]"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_storage_is_cosmos_serverless_by_default_or_blob_or_table(path: Path):
    template = load(path)
    scope = scope_of(template, "Microsoft.DocumentDB/databaseAccounts")
    backend = scope["parameters"]["storageBackend"]
    assert set(backend["allowedValues"]) == {"cosmos", "blob", "table"}
    assert backend["defaultValue"] == "cosmos"
    assert scope["parameters"]["cosmosServerless"]["defaultValue"] is True
    assert "'EnableServerless'" in scope["variables"]["cosmosCapabilities"]
    container = resource(template, "Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")
    assert container["properties"]["resource"]["partitionKey"]["paths"] == ["/id"]
    assert app_settings(template)["STORAGE"] == "[parameters('storageBackend')]"
    for resource_type in (
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        "Microsoft.Storage/storageAccounts/tableServices/tables",
    ):
        assert resource(template, resource_type)["condition"]


def test_every_storage_backend_the_template_offers_is_one_the_app_knows():
    from state_engine.stores.registry import BACKENDS

    offered = set(load(WITH_RG)["parameters"]["storageBackend"]["allowedValues"])
    assert offered == {"cosmos", "blob", "table"}
    assert offered <= set(BACKENDS)
