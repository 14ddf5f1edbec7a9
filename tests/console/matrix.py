from tests.role_matrix import Route

ROUTES = [Route("dashboard", "member")]
